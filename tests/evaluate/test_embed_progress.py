"""The embedding bar: counts every image (unreadable ones too), shows images/s, and is drawn only on a
terminal unless asked for."""

import io
import sys

from facenet_core.evaluate.embed import embed_images

MEAN, STD = [0.5, 0.4, 0.3], [0.25, 0.2, 0.2]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def embed(net, paths, **kwargs):
    return embed_images(net, paths, image_size=12, mean=MEAN, std=STD, batch_size=4, device="cpu", **kwargs)


def test_bar_counts_every_image_with_its_rate(face_tree, colour_net, capsys):
    paths = sorted(face_tree.glob("*/*"))[:6]
    paths[1].write_bytes(b"not an image")
    _, readable = embed(colour_net, paths, progress=True)
    assert readable.sum() == 5
    drawn = capsys.readouterr().err
    assert "embed" in drawn and "6/6" in drawn
    assert "img/s" in drawn or "s/img" in drawn  # tqdm turns the rate over below one image a second


def test_bar_only_on_a_terminal_by_default(face_tree, colour_net, capsys, monkeypatch):
    paths = sorted(face_tree.glob("*/*"))
    embed(colour_net, paths)
    assert "embed" not in capsys.readouterr().err  # pytest's capture is no terminal
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    embed(colour_net, paths)
    assert f"{len(paths)}/{len(paths)}" in terminal.getvalue()
    quiet = Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    embed(colour_net, paths, progress=False)
    assert "embed" not in quiet.getvalue()
