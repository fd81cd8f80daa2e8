"""Training data: label items teach a note's title, folder and category as targets."""
from assistant.learn.data import NoteChunk, NoteLabels, label_examples, labels_of, split_by_document

NOTE = [NoteChunk("/notes/home/boiler.md", "Boiler service", "Category: repairs\n\nThe engineer came on 3 May.\n"),
        NoteChunk("/notes/home/boiler.md", "Boiler service > Parts", "Diverter valve replaced for 180 pounds.\n")]
PLAIN = [NoteChunk("/notes/car/mot.txt", "", "MOT 2024 result\n\nPassed on 10 April.\n")]


def test_labels_of_a_note():
    assert labels_of(NOTE) == NoteLabels("Boiler service", "home", "repairs")
    assert labels_of(PLAIN) == NoteLabels("MOT 2024 result", "car", "")  # a .txt note's first line is its title


def test_label_items_ask_about_topics_and_answer_with_the_labels():
    items = label_examples(NOTE)
    targets = {e.target for e in items}
    assert targets == {"Boiler service", "home", "repairs"}
    assert all(e.prompt.startswith("Question: ") and e.prompt.endswith("Answer: ") for e in items)
    assert any("Parts" in e.prompt for e in items) and any("engineer came on 3 May" in e.prompt for e in items)
    assert all("Boiler service" not in e.prompt for e in items)  # the title is the answer, not the question
    assert {e.target for e in label_examples(PLAIN)} == {"MOT 2024 result", "car"}  # no category line


def test_label_items_follow_their_document_into_one_split():
    dataset = split_by_document(NOTE + PLAIN)
    train = {e.document for e in dataset.train if e.target in ("home", "car")}
    validation = {e.document for e in dataset.validation if e.target in ("home", "car")}
    assert train and validation and not train & validation
