"""nanosep.flowsheets"""
