"""The audience: lists, subscribers, memberships, their statuses and events, CSV in and out."""
