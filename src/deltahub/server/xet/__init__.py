"""The registry's Xet storage, from the public specification (huggingface/hub-docs ``docs/xet``).

hashing.py (chunk, xorb, file, verification hashes), xorb.py and shard.py (the two binary formats),
store.py (xorbs and file reconstructions in the registry's store), tokens.py (the Hub's Xet tokens),
reconstruction.py (download answers) and routes.py (the token endpoints and the CAS API).
"""
