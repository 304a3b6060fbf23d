"""A stand-in for kube-apiserver: kmock's emulator, made strict where the operator relies on it.

Why a stand-in: these machines have no container runtime, so no real
kube-apiserver (nor etcd) can run here. kmock's ``KubernetesEmulator`` keeps
objects in memory and serves list, watch, get, create, patch and delete; this
subclass adds what a real apiserver guarantees and a controller depends on:

- every object gets ``uid``, ``creationTimestamp``, ``generation`` and a
  ``resourceVersion`` from one counter, bumped on every write (and on delete);
- ``generation`` moves only when ``spec`` changes; the ``status`` subresource
  changes only ``status``, and a write to the object itself leaves ``status``
  alone (as for a CRD with ``subresources: status``);
- a write that names a ``resourceVersion`` other than the current one is a 409
  Conflict; a JSON patch whose ``test`` fails is a 422;
- a list answers the current ``resourceVersion``, and a watch started from a
  ``resourceVersion`` streams only what happened after it;
- it forgets requests once they are answered: kmock keeps every request for
  assertions and matches each new one against all of them, so its answers
  slowed down with every call (hundreds of ms after a few thousand), which a
  benchmark of the operator measured instead of the operator.

It runs in its own thread with its own event loop, so the operator (kopf's
``KopfRunner``, or a subprocess) talks to it over real HTTP on loopback.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypedDict

import attrs
import jsonpatch
import kmock
from kmock._internal import dicts, enums, parsing, rendering

from reconciler.sandbox.netns import entered

STATUS_SUBRESOURCE = {"sites"}
_parse_path = parsing.parse_path


def _parse_namespaces(path: str) -> Any:
    """kmock 0.8 misreads /api/v1/namespaces[/NAME] (a resource named like the prefix)."""
    parts = [part for part in path.split("/") if part]
    if parts[:3] == ["api", "v1", "namespaces"] and len(parts) <= 4:
        name = parts[3] if len(parts) == 4 else None
        return parsing.ParsedPath("", "v1", "namespaces", None, name, None)
    return _parse_path(path)


parsing.parse_path = _parse_namespaces


@attrs.define(kw_only=True)
class StrictApiserver(kmock.KubernetesEmulator):
    _counter: Iterator[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    _version: int = attrs.field(default=0, init=False)
    _in_flight: set[int] = attrs.field(factory=set, init=False)

    def _next_version(self) -> str:
        self._version = next(self._counter)
        return str(self._version)

    async def _handle(self, request: rendering.Request) -> Any:
        # kmock appended ``request`` just before calling this: keep only what is unanswered.
        self._in_flight.add(id(request))
        self._requests[:] = [r for r in self._requests if id(r) in self._in_flight]
        try:
            return await self._handle_strictly(request)
        finally:
            self._in_flight.discard(id(request))

    async def _handle_strictly(self, request: rendering.Request) -> Any:
        if request.resource is not None and request.action in (
            enums.action.CREATE,
            enums.action.UPDATE,
            enums.action.DELETE,
        ):
            try:
                async with self._lock:
                    await self._strict(request)
            except kmock.KubernetesError as error:
                return await self._render_error(error)
        return await super()._handle(request)

    async def _strict(self, request: rendering.Request) -> None:
        resource = request.resource
        assert resource is not None
        if request.action == enums.action.CREATE:
            body = copy.deepcopy(request.data or {})
            meta = body.setdefault("metadata", {})
            if "name" not in meta and "generateName" in meta:
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            meta.update(
                uid=str(uuid.uuid4()),
                creationTimestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                generation=1,
                resourceVersion=self._next_version(),
            )
            if request.namespace:
                meta.setdefault("namespace", request.namespace)
            object.__setattr__(request, "data", body)
            return
        if request.name is None:
            return  # no one object: nothing to check
        key = (resource, request.namespace, request.name)
        try:
            stored = self._objects[key]  # kmock's ObjectsArray has no .get()
        except KeyError:
            return  # the emulator answers 404
        if stored is None or stored.deleted:
            return  # the emulator answers 404
        current = copy.deepcopy(stored.raw)
        if request.action == enums.action.DELETE:
            meta = current.setdefault("metadata", {})
            if meta.get("finalizers") and not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                meta["resourceVersion"] = self._next_version()
                stored.patch(current)
                await self._buses[resource].put({"type": "MODIFIED", "object": current})
            else:
                stored["metadata"] = {
                    **current["metadata"],
                    "resourceVersion": self._next_version(),
                }
            return
        self._update(request, stored, current)

    def _update(self, request: rendering.Request, stored: Any, current: dict[str, Any]) -> None:
        assert request.resource is not None
        patch = request.data
        try:
            wanted = dict(dicts.patch_dict(copy.deepcopy(current), patch or {}))
        except jsonpatch.JsonPatchTestFailed as error:
            message = f"the JSON patch test failed: {error}"
            raise kmock.KubernetesError(422, "Invalid", message) from None
        except (jsonpatch.JsonPatchException, TypeError) as error:
            message = f"the patch does not apply: {error}"
            raise kmock.KubernetesError(422, "Invalid", message) from None
        asked = (wanted.get("metadata") or {}).get("resourceVersion")
        have = current["metadata"].get("resourceVersion")
        if isinstance(patch, dict):
            asked = (patch.get("metadata") or {}).get("resourceVersion")
        if asked is not None and asked != have:
            raise kmock.KubernetesError(
                409, "Conflict", f"the object has been modified (resourceVersion {have})"
            )
        if request.resource.plural in STATUS_SUBRESOURCE:
            if request.subresource == "status":
                wanted = {**current, "status": wanted.get("status")}
            else:
                wanted["status"] = current.get("status")
            wanted = {k: v for k, v in wanted.items() if v is not None}
        meta = wanted.setdefault("metadata", {})
        for fixed in ("uid", "creationTimestamp", "namespace", "name"):
            if fixed in current["metadata"]:
                meta[fixed] = current["metadata"][fixed]
        generation = int(current["metadata"].get("generation") or 1)
        meta["generation"] = generation + (wanted.get("spec") != current.get("spec"))
        meta["resourceVersion"] = self._next_version()
        # The emulator merge-patches what we pass: a patch that turns current into wanted.
        object.__setattr__(request, "data", _merge_patch(current, wanted))

    async def _serve_list(self, request: rendering.Request) -> Any:
        listed = await super()._serve_list(request)
        assert isinstance(listed, dict)  # a list answer is the kind's List object
        listed["metadata"]["resourceVersion"] = str(self._version)
        selector = _selector(request.params.get("labelSelector", ""))
        listed["items"] = [item for item in listed["items"] if _matches(item, selector)]
        return listed

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[Any]:
        since = request.params.get("resourceVersion")
        selector = _selector(request.params.get("labelSelector", ""))
        async for event in super()._serve_watch(request):
            if isinstance(event, dict) and not _matches(event.get("object") or {}, selector):
                continue
            if since and isinstance(event, dict) and event.get("type") == "ADDED":
                version = event.get("object", {}).get("metadata", {}).get("resourceVersion")
                if version is not None and int(version) <= int(since):
                    continue  # already in the list the client started from
            yield event


def _selector(text: str) -> dict[str, str]:
    """``a=b,c=d`` (equality-based label selectors, what the operator and kopf use)."""
    pairs = [part.split("=", 1) for part in text.split(",") if "=" in part]
    return {key.strip(): value.strip().lstrip("=") for key, value in pairs}


def _matches(item: dict[str, Any], selector: dict[str, str]) -> bool:
    labels = (item.get("metadata") or {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in selector.items())


def _merge_patch(old: Any, new: Any) -> Any:
    """The RFC 7386 merge patch that turns ``old`` into ``new`` (None removes a key)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = _merge_patch(old[key], value)
    return patch


class Discovery(TypedDict, total=False):
    """What the emulator tells clients about a resource (kmock.ResourceInfo's fields)."""

    kind: str
    namespaced: bool
    subresources: set[str]


RESOURCES: dict[str, Discovery] = {
    "reconciler.dev/v1alpha1/sites": {
        "kind": "Site",
        "namespaced": True,
        "subresources": {"status"},
    },
    "v1/secrets": {"kind": "Secret", "namespaced": True},
    "v1/configmaps": {"kind": "ConfigMap", "namespaced": True},
    "v1/events": {"kind": "Event", "namespaced": True},
    "v1/namespaces": {"kind": "Namespace", "namespaced": False},
    "kopf.dev/v1/kopfpeerings": {"kind": "KopfPeering", "namespaced": True},
    "apiextensions.k8s.io/v1/customresourcedefinitions": {
        "kind": "CustomResourceDefinition",
        "namespaced": False,
    },
}


class RunningApiserver:
    """The strict apiserver on a loopback port, in a thread: ``url``, ``objects()``, ``stop()``."""

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace  # a network namespace to listen in (its loopback)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.url = ""
        self.server: StrictApiserver | None = None
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, name="apiserver", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        if self.namespace is None:
            self.loop.run_until_complete(self._serve())
            return
        with entered(self.namespace):  # this thread's sockets are the namespace's
            self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with StrictApiserver() as server, kmock.Server(server) as http:
            for name, info in RESOURCES.items():
                server.resources[name] = kmock.ResourceInfo(
                    verbs={"get", "list", "watch", "create", "patch", "update", "delete"}, **info
                )
            self.server, self.url = server, str(http.url).rstrip("/")
            self.ready.set()
            await self._stop.wait()

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(timeout=10)

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: kmock\n"
            f"clusters: [{{name: kmock, cluster: {{server: '{self.url}'}}}}]\n"
            "users: [{name: kmock, user: {token: test-token}}]\n"
            "contexts: [{name: kmock, context: {cluster: kmock, user: kmock}}]\n"
        )
        return path


@contextmanager
def apiserver(namespace: str | None = None) -> Iterator[RunningApiserver]:
    running = RunningApiserver(namespace)
    running.thread.start()
    if not running.ready.wait(timeout=30):
        raise RuntimeError("the stand-in apiserver did not start")
    try:
        yield running
    finally:
        running.stop()
