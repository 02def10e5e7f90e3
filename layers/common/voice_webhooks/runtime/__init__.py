"""Process-wide plumbing: settings, Powertools logger/metrics/tracer, boto3 clients."""
