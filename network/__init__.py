"""nanosep.network"""
