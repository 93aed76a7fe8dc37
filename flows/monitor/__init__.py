"""The live monitor: the Bytewax dataflow around the SLA core.

`flow.get_flow` builds the dataflow (Kafka in, one `Engine` per shard, Kafka and QuestDB out);
`shard` decodes fetches and adapts the engine to Bytewax; `watermark` keeps each shard's event
time; `heartbeat` reports progress; `runner` starts it (`slawatch run`).
"""
