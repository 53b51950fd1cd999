"""The studies the suite reproduces: names, the papers' numbers, and their own tables."""
