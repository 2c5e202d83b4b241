"""Life cycles (cases, questions, key projects) and the policy of who may do what."""
