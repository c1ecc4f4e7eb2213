"""heap.py: collections held off around bulk work, and always given back."""

import gc

import pytest

from seqtui.heap import CollectionHold, collections_held


@pytest.fixture(autouse=True)
def gc_restored():
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


def test_collections_held_turns_collection_off_inside_and_back_on_after():
    gc.enable()
    with collections_held():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_collections_held_gives_collection_back_when_the_block_raises():
    gc.enable()
    with pytest.raises(RuntimeError), collections_held():
        raise RuntimeError("scan failed")
    assert gc.isenabled()


def test_a_hold_leaves_collection_off_if_it_was_off_already():
    gc.disable()
    with collections_held():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_release_is_idempotent_and_only_undoes_its_own_hold():
    gc.enable()
    hold = CollectionHold()
    hold.hold()
    hold.hold()
    assert not gc.isenabled()
    hold.release()
    assert gc.isenabled()
    gc.disable()  # someone else turns it off: a second release must not turn it back on
    hold.release()
    assert not gc.isenabled()
