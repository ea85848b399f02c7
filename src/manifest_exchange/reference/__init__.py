"""Reference data shipped with the project: airports and countries (:mod:`.codes`)."""
