"""Identity: profiles, identifiers, resolution, merge/unmerge, consent and erasure."""
