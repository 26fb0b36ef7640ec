"""Customer service: one inbox for every channel, one conversation across channels."""
