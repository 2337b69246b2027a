from mercato.kit.errors import Conflict


class InsufficientFunds(Conflict):
    """409: the posting would take a wallet (or another account that may not go negative)
    below zero. Nothing of the posting happened."""

    code, title = "insufficient_funds", "Not enough money in the account"


class UnbalancedTransaction(ValueError):
    """A programming error: a ledger transaction's entries must sum to zero."""
