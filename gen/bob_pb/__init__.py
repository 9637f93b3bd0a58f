"""Generated from protos/ by `make gen`. Do not edit."""
