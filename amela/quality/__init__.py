"""The quality stage: DNSMOS (P.835, P.808) with the models `speechmos` ships, and signal measures per record."""
