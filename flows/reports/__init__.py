"""Reports and history: backfilling replayed records into QuestDB, and reports read back from it."""
