from hypothesis import settings as _hypothesis_settings

# A shared 2-core CI machine can take far longer than hypothesis' 200 ms default per example:
# a deadline there fails tests for the machine's load, not for the code's behaviour.
_hypothesis_settings.register_profile("slawatch", deadline=None)
_hypothesis_settings.load_profile("slawatch")
