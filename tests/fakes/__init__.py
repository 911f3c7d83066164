"""In-repo fakes of chat platforms' servers, for running the real client libraries in tests."""
