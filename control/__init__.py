"""nanosep.control"""
