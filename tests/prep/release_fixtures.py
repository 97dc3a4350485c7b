"""Release-layout fixtures for the importers (Fitness-AQA, QVED, LLaVA JSON, image VQA, seed 000's annotated
errors): each builds one release under a given folder, good records and bad ones, with real media.

The importer tests and the help-example test (tests/e2e/test_help_examples.py) build their inputs with them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from import_helpers import clip, cut_clip, cut_image, frames, garbage, image, write_json
from PIL import Image

from videotune.core.video import encode_video

QVED_FEEDBACK = "Squats - knees cave in during the descent; push the knees out over the toes"
ANNOTATED_FEEDBACK = "Keep knees aligned over the toes and the chest up."
TIMING = ("The video lasts for 3.00 seconds, and 8 frames are uniformly sampled from it. These frames are located at "
          "0.00s, 0.42s, 0.83s, 1.25s, 1.67s, 2.08s, 2.50s, 2.92s.")
QUESTION = ("Please answer the following questions related to this video.\nThe subject is performing a Squat or a "
            "Overhead Press (OHP) exercise. Which one is he making? Is he making a mistake? If so, what mistake is he making?")
FEEDBACK_Q = ("Please evaluate the exercise form shown. What mistakes, if any, are present, and what corrections "
              "would you recommend?")


def llava_record(rid, media, answer, question=QUESTION, kind="video", **extra):
    return {"id": rid, kind: media, "conversations": [{"from": "human", "value": f"<{kind}>\n{question}"},
                                                      {"from": "gpt", "value": answer}], **extra}


def fitness_aqa_release(root: Path) -> Path:
    """A Fitness-AQA release in the real layout with one clip per case, good and bad."""
    root.mkdir(parents=True, exist_ok=True)
    squat = root / "Squat" / "Labeled_Dataset"
    for vid in ("s_two", "s_clean", "s_backwards", "s_negative", "s_past", "s_dup", "s_twosplits"):
        clip(squat / "videos" / f"{vid}.mp4")
    cut_clip(squat / "videos" / "s_cut.mp4")
    garbage(squat / "videos" / "s_garbage.mp4")
    outside = clip(root.parent / "elsewhere" / "x.mp4")
    os.symlink(outside, squat / "videos" / "s_escape.mp4")
    forward = {
        "s_two": [[0.5, 1.0], [1.5, 2.0]], "s_clean": [], "s_missing": [], "s_cut": [], "s_garbage": [],
        "s_backwards": [[2.0, 1.0]], "s_negative": [[-0.5, 1.0]], "s_past": [[1.0, 9.0]], "s_escape": [],
        "s_twosplits": [],
    }
    text = json.dumps(forward)[:-1] + ', "s_dup": [], "s_dup": [[0.1, 0.2]]}'  # a key twice: json keeps the last
    (squat / "Labels").mkdir(parents=True)
    (squat / "Labels" / "error_knees_forward.json").write_text(text)
    write_json(squat / "Labels" / "error_knees_inward.json", {k: [] for k in [*forward, "s_dup"]} | {"s_two": [[0.0, 0.4]]})
    write_json(squat / "Labels" / "error_knees_sideways.json", {"s_two": []})
    write_json(squat / "Splits" / "train_keys.json", ["s_two", "s_backwards", "s_twosplits"])
    write_json(squat / "Splits" / "val_keys.json", ["s_clean"])
    write_json(squat / "Splits" / "test_keys.json", ["s_twosplits"])
    ohp = root / "OHP" / "Labeled_Dataset"
    clip(ohp / "videos" / "o_two.mp4")
    clip(ohp / "videos" / "o_unlabelled.mp4")
    clip(ohp / "videos" / "o_stray.mp4")  # in no label or split file
    write_json(ohp / "Labels" / "error_elbows.json", {"o_two": [[0.0, 2.78]], "o_unlabelled": []})
    write_json(ohp / "Labels" / "error_knees.json", {"o_two": [[0.0, 0.89]]})
    write_json(ohp / "Splits" / "test_keys.json", ["o_two", "o_unlabelled"])
    (root / "BarbellRow").mkdir()
    return root


def qved_release(root: Path) -> Path:
    """A QVED folder: ground_truth.json, a manifest, clips of 2 subjects x 5 reps plus bad records."""
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for subject in range(1, 6):
        for rep in range(1, 3):
            path = f"squats/subj{subject}_rep{rep}.mp4"
            clip(root / path, seconds=1.0)
            records.append({"video_path": path, "labels_descriptive": QVED_FEEDBACK, "labels": ["knees_cave_in"]})
    clip(root / "step-ups/su1.mp4", seconds=1.0)
    records.append({"video_path": "step-ups/su1.mp4", "labels_descriptive": "Step-ups - leaning forward; stay upright",
                    "labels": []})
    clip(root / "lunges/l1.mp4", seconds=1.0)
    records.append({"video_path": "lunges/l1.mp4", "labels_descriptive": "Lunges - short stride; step further",
                    "labels": []})
    clip(root / "other/found_by_manifest.mp4", seconds=1.0)  # the record names the file only
    records.append({"video_path": "found_by_manifest.mp4", "labels_descriptive": "no exercise prefix here", "labels": []})
    records += [
        {"video_path": "squats/missing.mp4", "labels_descriptive": QVED_FEEDBACK, "labels": []},
        {"video_path": "squats/subj1_rep1.mp4", "labels_descriptive": QVED_FEEDBACK, "labels": []},  # duplicate
        {"video_path": "squats/nolabel.mp4", "labels": []},
        {"video_path": "../outside.mp4", "labels_descriptive": QVED_FEEDBACK, "labels": []},
        {"video_path": "squats/cut.mp4", "labels_descriptive": QVED_FEEDBACK, "labels": []},
        {"video_path": "squats/garbage.mp4", "labels_descriptive": QVED_FEEDBACK, "labels": []},
        {"video_path": "squats/badlabels.mp4", "labels_descriptive": QVED_FEEDBACK, "labels": "knees"},
    ]
    clip(root / "squats/nolabel.mp4", seconds=1.0)
    clip(root / "squats/badlabels.mp4", seconds=1.0)
    clip(root.parent / "outside.mp4", seconds=1.0)
    cut_clip(root / "squats/cut.mp4")
    garbage(root / "squats/garbage.mp4")
    write_json(root / "ground_truth.json", records)
    write_json(root / "manifest.json", {"other/found_by_manifest.mp4": "Jumping jacks"})
    return root


def llava_release(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in ("squat1", "ohp1", "squat2", "squat3", "qved1", "past"):
        clip(root / "videos" / f"{name}.mp4")
    garbage(root / "videos" / "garbage.mp4")
    cut_clip(root / "videos" / "cut.mp4")
    image(root / "images" / "scan1.png")
    image(root / "images" / "scan2.png", value=30)
    clip(root.parent / "outside.mp4")
    records = [
        llava_record("squat1", "videos/squat1.mp4", "The subject is performing a Squat. The body part committing errors is the "
                "following: knees forward from frame time 0.72s to 2.19s.", question=f"{TIMING} {QUESTION}", split="train"),
        llava_record("ohp1", "videos/ohp1.mp4", "The subject is performing a OHP. The body parts where errors are detected are as "
                "follows: elbows from frame time 0.0s to 2.78s and knees from frame time 0.0s to 0.89s."),
        llava_record("squat2", "videos/squat2.mp4", "The subject is performing a Squat. He performs it correctly, without any "
                "subtle errors."),
        llava_record("squat3", "videos/squat3.mp4", "The subject is performing a Squat. The body part committing errors is the "
                "following: knees inward."),
        llava_record("qved1", "videos/qved1.mp4", "Squats - knees cave in; push the knees out", question=FEEDBACK_Q, split="val"),
        llava_record("scan1", "images/scan1.png", "Yes", question="Is there a lesion?", kind="image", stage="initial"),
        {"id": "scan2", "image": "images/scan2.png", "conversations": [
            {"from": "human", "value": "<image>\nIs there a lesion?"}, {"from": "gpt", "value": "No"},
            {"from": "human", "value": "Where would it be?"}, {"from": "gpt", "value": "Nowhere."}]},
        # bad records
        llava_record("missing", "videos/missing.mp4", "x"),
        llava_record("garbage", "videos/garbage.mp4", "x"),
        llava_record("squat2", "videos/squat2.mp4", "duplicate id"),
        llava_record("escape", "../outside.mp4", "x"),
        llava_record("past", "videos/past.mp4", "The subject is performing a Squat. The body part committing errors is the "
                "following: knees forward from frame time 0.72s to 9.50s."),
        llava_record("backwards", "videos/squat1.mp4", "The subject is performing a Squat. The body part committing errors is "
                "the following: knees forward from frame time 2.5s to 1.0s."),
        llava_record("negative", "videos/squat1.mp4", "The subject is performing a Squat. The body part committing errors is "
                "the following: knees forward from frame time -0.5s to 1.0s."),
        llava_record("cut", "videos/cut.mp4", "The subject is performing a Squat. He performs it correctly, without any "
                "subtle errors."),
        {"id": "oneturn", "video": "videos/squat1.mp4", "conversations": [{"from": "human", "value": "<video>\nhi"}]},
        {"id": "textonly", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
        llava_record("badsplit", "videos/squat1.mp4", "x", split="training"),
    ]
    write_json(root / "train.json", records)
    return root


def vqa_release(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    image(root / "images" / "a.png")
    image(root / "images" / "b.png", value=20)
    cut_image(root / "images" / "cut.png")
    (root / "images" / "text.png").write_text("not an image")
    image(root.parent / "outside.png")
    records = [
        {"image": "images/a.png", "question": "Is there a lesion?", "answer": "yes", "stage": "initial", "split": "train"},
        {"image": "images/a.png", "question": "How many lesions?", "answer": 2, "stage": "findings"},
        {"image": "images/a.png", "question": "Is it urgent?", "answer": True, "stage": "context"},
        {"id": "b-q1", "image": "images/b.png", "question": "Is there a lesion?", "answer": "no", "stage": "initial",
         "group": "patient7", "source": "ward 3"},
        # bad records
        {"image": "images/missing.png", "question": "q", "answer": "a", "stage": "initial"},
        {"image": "images/cut.png", "question": "q", "answer": "a", "stage": "initial"},
        {"image": "images/text.png", "question": "q", "answer": "a", "stage": "initial"},
        {"image": "images/b.png", "question": "q", "answer": "a", "stage": "diagnosis"},
        {"image": "images/b.png", "question": "q", "stage": "initial"},
        {"id": "b-q1", "image": "images/b.png", "question": "q", "answer": "a", "stage": "initial"},
        {"image": str(root.parent / "outside.png"), "question": "q", "answer": "a", "stage": "initial"},
        {"image": "images/../../outside.png", "question": "q", "answer": "a", "stage": "initial"},
        "not a record",
    ]
    write_json(root / "vqa.json", records)
    (root / "vqa.jsonl").write_text("\n".join(json.dumps(r) for r in records[:4]) + "\n")
    return root


def annotated_release(root: Path) -> Path:
    """A seed-000 annotated set: clips at 12 and 24 fps, a frames folder, and the bad records the issue names."""
    root.mkdir(parents=True, exist_ok=True)
    clip(root / "squats/00123.mp4", seconds=1.0)  # 12 frames at 12 fps
    clip(root / "step-ups/su1.mp4", seconds=1.0)
    encode_video(root / "lunges/fast.mp4", frames(1.0, fps=24.0), 24.0)  # 24 frames at 24 fps
    clip(root / "squat/synthetic.mp4", seconds=1.0)
    clip(root / "squats/untimed.mp4", seconds=1.0)
    clip(root / "squats/spans.mp4", seconds=1.0)
    clip(root / "squats/late.mp4", seconds=1.0)
    clip(root.parent / "outside.mp4", seconds=1.0)
    folder = root / "squats/extracted"  # pre-extracted frames with irregular times
    folder.mkdir(parents=True)
    for index, frame in enumerate(frames(0.5)):
        Image.fromarray(frame).save(folder / f"img{index}.png")
    times = [0.0, 0.1, 0.15, 0.3, 0.32, 0.5]
    (folder / "timestamps.txt").write_text("\n".join(map(str, times)))
    records = [
        {"video": "squats/00123.mp4", "exercise": "squats", "errors": ["knee_valgus", "forward_lean"],
         "error_frames": [9, 3, 6], "ground_truth": ANNOTATED_FEEDBACK},
        {"video": "step-ups/su1.mp4", "exercise": "step-ups", "errors": [], "error_frames": [],
         "ground_truth": "Good form."},
        {"video": "lunges/fast.mp4", "exercise": "Walking Lunges", "errors": ["short_stride"], "error_frames": [12, 18],
         "ground_truth": "Step further."},
        {"video": "squat/synthetic.mp4", "exercise": "squat", "errors": ["knees_inward"], "error_frames": [2, 5],
         "ground_truth": "Push the knees out."},
        {"video": "squats/untimed.mp4", "exercise": "squats", "errors": ["forward_lean"], "error_frames": [],
         "ground_truth": "Chest up."},
        {"video": "squats/spans.mp4", "exercise": "squats", "errors": ["knee_valgus", "forward_lean"],
         "error_frames": [1, 2, 3, 8, 9], "error_spans": {"knee_valgus": [[1, 3]], "forward_lean": [[8, 9]]},
         "ground_truth": ANNOTATED_FEEDBACK, "annotator": "pt-1"},
        {"video": "squats/extracted", "exercise": "squats", "errors": ["knee_valgus"], "error_frames": [2, 4],
         "ground_truth": ANNOTATED_FEEDBACK},
        {"video": "squats/missing.mp4", "exercise": "squats", "errors": [], "error_frames": [], "ground_truth": ""},
        {"video": "../outside.mp4", "exercise": "squats", "errors": [], "error_frames": [], "ground_truth": ""},
        {"video": "squats/late.mp4", "exercise": "squats", "errors": ["knee_valgus"], "error_frames": [4, 12],
         "ground_truth": ANNOTATED_FEEDBACK},
        {"video": "squats/00123.mp4", "exercise": "squats", "errors": [], "error_frames": [], "ground_truth": ""},
    ]
    write_json(root / "annotated_errors.json", records)
    return root
