"""Call recordings: find the file MixMonitor wrote (``locate``), check it (``probe``), make a
small seekable browser copy with a waveform (``transcode``), keep the catalogue up to date
(``worker``), delete by age or on erasure (``retention``), and answer HTTP Range (``ranges``)."""
