"""The README's first command: ``ltx2-diffusers demo`` writes an mp4 whose streams read back as promised."""

import av

from ltx2_diffusers.cli import main


def test_demo_writes_an_mp4_with_the_expected_video_and_audio(tmp_path, capsys):
    path = tmp_path / "demo.mp4"
    assert main(["demo", "--output", str(path), "--frames", "17", "--height", "64", "--width", "96",
                 "--steps", "2"]) == 0
    printed = capsys.readouterr().out
    assert "random weights" in printed and str(path) in printed
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        frames = sum(1 for _ in container.decode(video))
        assert (frames, video.codec_context.height, video.codec_context.width) == (17, 64, 96)
        assert audio.codec_context.sample_rate == 24000 and audio.codec_context.channels == 2
    with av.open(str(path)) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
    assert abs(samples / 24000 - 17 / 24) < 0.05  # the clip's duration, give or take one AAC frame
