"""DynamoDB access for EventsTable."""
