"""Reports over slawatch's QuestDB tables.

The shared SQL every view reads (`queries`), the terminal wallboard (`top`), history backfill
and the scorecard, daily, causes and baseline reports.
"""
