"""Reports over slawatch's QuestDB tables: the shared SQL and the terminal wallboard."""
