"""The install agent (``mercato agent``): runs on an instance, takes tasks from the store and
installs, upgrades, stops, resumes and removes packages with its ``files`` driver."""
