"""nanosep.transport"""
