"""Every section the configuration file knows, in apply order."""

from __future__ import annotations

from tocsin.configfile.comm_sections import (
    AudienceSection,
    CommunicationSection,
    MessageTemplateSection,
)
from tocsin.configfile.oncall_sections import (
    ChannelSection,
    EscalationPolicySection,
    ScheduleSection,
    ServiceSection,
    UserSection,
)
from tocsin.configfile.sections import (
    ChecklistSection,
    GroupingSection,
    HeartbeatSection,
    IncidentRoleSection,
    InhibitRuleSection,
    IntegrationSection,
    MaintenanceWindowSection,
    RouteSection,
    Section,
    SeveritySection,
    SilenceSection,
    TeamSection,
)
from tocsin.configfile.webhook_sections import WebhookSection

# Apply order: a section comes after the sections it refers to (foreign keys); it is also the
# order of ConfigDocument's fields, which export follows.
SECTIONS: tuple[Section, ...] = (
    SeveritySection(),
    IncidentRoleSection(),
    UserSection(),
    TeamSection(),
    ScheduleSection(),
    EscalationPolicySection(),
    ServiceSection(),
    ChecklistSection(),
    IntegrationSection(),
    RouteSection(),
    GroupingSection(),
    HeartbeatSection(),
    SilenceSection(),
    MaintenanceWindowSection(),
    InhibitRuleSection(),
    ChannelSection(),
    WebhookSection(),
    AudienceSection(),
    CommunicationSection(),
    MessageTemplateSection(),
)
