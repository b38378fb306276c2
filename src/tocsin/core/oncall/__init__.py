"""On-call schedules: rotations, layers, restrictions, overrides and iCalendar feeds."""
