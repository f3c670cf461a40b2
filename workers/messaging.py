"""Message delivery actors (issue 3 completes this)."""

import dramatiq


@dramatiq.actor(queue_name="messages", max_retries=0)
def deliver_message(message_id: int) -> None:
    pass
