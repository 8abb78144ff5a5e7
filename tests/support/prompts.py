"""The prompts the tests give the offline model, named by the calls it makes of them."""

SALLY = "Send sally@example.com an email saying 'hi'"
"""One `send_email` call, which waits for a decision."""
PAIR = "Send bob@example.com an email saying 'hi' and send carol@example.org an email saying 'yo'"
"""Two `send_email` calls in one turn."""
COUNT = "count my emails of the last 3 days"
"""One `count_emails` call, which runs without asking anyone."""
TWO_EMAILS = (
    "count my emails of the last 3 days and send bob@example.com an email saying 'hi' "
    "and send carol@example.org an email saying 'yo'"
)
"""`count_emails` and two `send_email` calls in one turn."""


def email_prompt(n: int) -> str:
    """The prompt of the `n`th of many distinct emails to send."""
    return f"Send user{n}@example.com an email saying 'hello {n}'"
