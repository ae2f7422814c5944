"""workers.model_cache: the per-process model cache shared by the SAM 3, tracker and verifier tasks."""
import pytest

from workers.model_cache import ModelCache


def test_a_new_uri_is_loaded_once_and_the_least_recently_used_is_evicted():
    loads, evictions = [], []
    cache = ModelCache(2, on_evict=lambda: evictions.append(1))

    def get(uri):
        return cache.get(uri, lambda: loads.append(uri) or f"model:{uri}")

    assert get("v1") == "model:v1" and get("v1") == "model:v1"
    get("v2")
    get("v1")  # v1 is now the most recent
    get("v3")  # a newly promoted version: loaded without a restart, v2 evicted
    assert loads == ["v1", "v2", "v3"] and list(cache) == ["v1", "v3"] and evictions == [1]
    cache.clear()
    assert len(cache) == 0 and "v1" not in cache


def test_a_failed_load_caches_nothing():
    cache = ModelCache(2)

    def boom():
        raise RuntimeError("bad checkpoint")

    with pytest.raises(RuntimeError):
        cache.get("bad", boom)
    assert "bad" not in cache and cache.get("bad", lambda: "ok") == "ok"
