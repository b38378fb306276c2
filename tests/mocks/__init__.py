"""Local stand-ins for vendors' APIs (Slack Web API, Twilio REST), driven by their real clients."""
