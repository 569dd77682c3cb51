"""nanosep.surrogates"""
