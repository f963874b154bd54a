"""The training epoch's bar is drawn on a terminal only, never into logs."""

import io
import sys

from facenet_core.train.engine import train_epoch


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_epoch_bar_only_on_a_terminal(tiny_config, tiny_dataset, tmp_path, capsys, monkeypatch):
    train_epoch(tiny_config, 0, tiny_dataset["triplets"][0], None, tmp_path / "logged")
    assert "step" not in capsys.readouterr().err  # pytest's capture is no terminal
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    train_epoch(tiny_config, 0, tiny_dataset["triplets"][0], None, tmp_path / "terminal")
    drawn = terminal.getvalue()
    assert "2/2" in drawn and "loss=" in drawn
    assert "step/s" in drawn or "s/step" in drawn  # tqdm turns the rate over below one step a second
