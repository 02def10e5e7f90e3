"""TwiML rendering with twilio-python."""
