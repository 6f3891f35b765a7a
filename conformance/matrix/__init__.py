"""The binding matrix (`pkcs11-conformance matrix`): the checks under several python-pkcs11 versions, side by side,
with the gate between neighbours. environments.py makes one environment per version; runs.py runs and merges."""
