// click-to-call wiring: owned by the click-to-call work.
