"""Plain progress lines (no terminal): done/total, elapsed, time left, and a status such as the loss."""

import logging

from videotune.core.progress import Progress


def test_plain_lines_give_counts_time_left_and_status(caplog):
    caplog.set_level(logging.INFO, logger="videotune")
    with Progress("train", total=4, log_every_s=0.0) as progress:
        progress.advance()
        progress.set_status("loss 1.2345")
        progress.advance()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "train: 0/4"
    assert lines[1].startswith("train: 1/4 (") and "s left)" in lines[1]
    assert lines[2].startswith("train: 2/4 (") and lines[2].endswith(") loss 1.2345")


def test_a_resumed_count_starts_where_it_was_and_the_last_line_has_no_time_left(caplog):
    caplog.set_level(logging.INFO, logger="videotune")
    with Progress("train", total=3, log_every_s=0.0, done=2) as progress:
        progress.advance()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "train: 2/3"
    assert lines[1].startswith("train: 3/3 (") and "left" not in lines[1]
