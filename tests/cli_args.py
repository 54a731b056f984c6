"""The small `fastwgan train` argument lists the CLI tests share: tiny networks, batch 8, a log line every step."""

SMALL = ["--batch-size", "8", "--width", "16", "--no-progress", "--log-every", "1"]
TOY = ["--data", "toy:8gaussians", "--toy-n", "300", *SMALL]
DIGITS = ["--data", "digits-train", *SMALL]
COND_DIGITS = ["--data", "digits-train", "--conditional", *SMALL]
REFERENCE = ["--trainer", "reference"]  # the eager oracle: no compile in a CLI test
