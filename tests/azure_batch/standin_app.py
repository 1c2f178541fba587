"""The Azure Batch stand-in's HTTP surface: the data-plane routes (nodes, jobs, tasks, files) and the
management-plane routes the provider uses (pools, the account, user-assigned identities, resource-group locks), in
the shapes of the recorded sessions in tests/azure_batch/recordings/ (held to them by test_recorded_shapes.py).

Every request needs a bearer token (recorded, so tests can check whose token arrived); faults the test injected
answer first (429 with Retry-After, 409 PoolBeingResized, 5xx).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from tests.azure_batch.standin_state import BatchWorld, Pool, Task, iso_now, new_etag

ARM_ACCOUNT = ("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Batch/batchAccounts/{account}")
ODATA = "application/json; odata=minimalmetadata"


def batch_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"odata.metadata": "https://127.0.0.1/$metadata#Microsoft.Azure.Batch.Protocol.Entities."
                                           "Container.errors/@Element",
                         "code": code, "message": {"lang": "en-US", "value": message}}, status_code=status)


def arm_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def create_standin_app(world: BatchWorld) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.middleware("http")
    async def authenticate_and_inject(request: Request, call_next: Any) -> Response:
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("Bearer "):
            return arm_error(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is "
                                                          "missing.")
        with world.lock:
            world.bearer_tokens.append((request.url.path, authorization.removeprefix("Bearer ")))
        fault = world.take_fault(request.method, request.url.path)
        if fault is not None:
            arm = request.url.path.startswith("/subscriptions/")
            answer = (arm_error if arm else batch_error)(fault.status, fault.code, fault.message)
            if fault.retry_after is not None:
                answer.headers["Retry-After"] = str(int(fault.retry_after))
            return answer
        world.tick()
        response: Response = await call_next(request)
        world.tick()
        return response

    # --- management plane: the account ------------------------------------------------------------------------
    @app.get(ARM_ACCOUNT)
    def get_account(sub: str, rg: str, account: str) -> dict[str, Any]:
        return {"id": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Batch/batchAccounts/{account}",
                "name": account, "type": "Microsoft.Batch/batchAccounts", "location": "eastus",
                "properties": {"accountEndpoint": f"{account}.eastus.batch.azure.com", "provisioningState": "Succeeded",
                               "dedicatedCoreQuota": 500,
                               "dedicatedCoreQuotaPerVMFamily": [{"name": "standardDv2Family", "coreQuota": 100},
                                                                 {"name": "standardNCSv3Family", "coreQuota": 24},
                                                                 {"name": "Standard NCASv3_T4 Family", "coreQuota": 8}],
                               "dedicatedCoreQuotaPerVMFamilyEnforced": True, "lowPriorityCoreQuota": 200,
                               "poolQuota": 100, "activeJobAndJobScheduleQuota": 300,
                               "poolAllocationMode": "BatchService", "publicNetworkAccess": "Enabled",
                               "encryption": {"keySource": "Microsoft.Batch"}, "allowedAuthenticationModes": ["AAD"]},
                "identity": {"type": "None"}}

    # --- management plane: pools ------------------------------------------------------------------------------
    def pool_resource(sub: str, rg: str, account: str, pool: Pool) -> dict[str, Any]:
        props = pool.body["properties"]
        ded, low = pool.targets
        resizing = pool.resizing_until is not None
        properties: dict[str, Any] = {}
        if "displayName" in props:
            properties["displayName"] = props["displayName"]
        properties |= {
            "lastModified": iso_now(), "creationTime": pool.created, "provisioningState": "Succeeded",
            "provisioningStateTransitionTime": pool.created,
            "allocationState": "Resizing" if resizing else "Steady",
            "allocationStateTransitionTime": pool.allocation_time,
            "vmSize": str(props.get("vmSize", "")).upper(),
            "interNodeCommunication": props.get("interNodeCommunication", "Disabled"),
            "taskSlotsPerNode": props.get("taskSlotsPerNode", 1),
            "taskSchedulingPolicy": {"nodeFillType": "Spread"},
            "deploymentConfiguration": _with_image_version(props.get("deploymentConfiguration", {})),
            "scaleSettings": {"fixedScale": {"targetDedicatedNodes": ded, "targetLowPriorityNodes": low,
                                             "resizeTimeout": "PT15M"}},
        }
        for optional in ("networkConfiguration", "metadata", "startTask", "mountConfiguration"):
            if optional in props:
                properties[optional] = props[optional]
        status: dict[str, Any] = {"targetDedicatedNodes": ded}
        if low:
            status["targetLowPriorityNodes"] = low
        status |= {"nodeDeallocationOption": "Requeue", "resizeTimeout": "PT15M", "startTime": pool.allocation_time}
        if pool.resize_errors:
            status["errors"] = pool.resize_errors
        properties["resizeOperationStatus"] = status
        properties["currentDedicatedNodes"] = len(pool.live_nodes(True))
        properties["currentLowPriorityNodes"] = len(pool.live_nodes(False))
        resource: dict[str, Any] = {
            "id": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Batch/batchAccounts/{account}"
                  f"/pools/{pool.name}",
            "name": pool.name, "type": "Microsoft.Batch/batchAccounts/pools", "etag": f'W/"{pool.etag}"',
            "properties": properties}
        for optional in ("identity", "tags"):
            if optional in pool.body:
                resource[optional] = pool.body[optional]
        return resource

    def with_etag(resource: dict[str, Any]) -> JSONResponse:
        return JSONResponse(resource, headers={"ETag": resource["etag"]})

    @app.get(ARM_ACCOUNT + "/pools")
    def list_pools(sub: str, rg: str, account: str) -> dict[str, Any]:
        with world.lock:
            return {"value": [pool_resource(sub, rg, account, p) for p in world.pools.values()]}

    @app.get(ARM_ACCOUNT + "/pools/{name}")
    def get_pool(sub: str, rg: str, account: str, name: str) -> Response:
        with world.lock:
            pool = world.pools.get(name)
            if pool is None:
                return arm_error(404, "PoolNotFound", "The specified pool does not exist.")
            return with_etag(pool_resource(sub, rg, account, pool))

    @app.put(ARM_ACCOUNT + "/pools/{name}")
    async def put_pool(sub: str, rg: str, account: str, name: str, request: Request) -> Response:
        body = await request.json()
        with world.lock:
            existing = world.pools.get(name)
            if existing is not None and request.headers.get("if-none-match") == "*":
                return arm_error(412, "PreconditionFailed", "The pool exists already.")
            if existing is not None and request.headers.get("if-match") not in (None, "*", f'W/"{existing.etag}"'):
                return arm_error(412, "PreconditionFailed", "The ETag does not match the pool's.")
            pool = Pool(name=name, body=body)
            world.pools[name] = pool
            world.start_resize(pool)
            return with_etag(pool_resource(sub, rg, account, pool))

    @app.patch(ARM_ACCOUNT + "/pools/{name}")
    async def patch_pool(sub: str, rg: str, account: str, name: str, request: Request) -> Response:
        body = await request.json()
        with world.lock:
            pool = world.pools.get(name)
            if pool is None:
                return arm_error(404, "PoolNotFound", "The specified pool does not exist.")
            if request.headers.get("if-match") not in (None, "*", f'W/"{pool.etag}"'):
                return arm_error(412, "PreconditionFailed", "The ETag does not match the pool's.")
            before = pool.targets
            pool.body["properties"].update(body.get("properties", {}))
            for key in ("identity", "tags"):
                if key in body:
                    pool.body[key] = body[key]
            pool.etag = new_etag()
            if pool.targets != before:
                world.start_resize(pool)
            return with_etag(pool_resource(sub, rg, account, pool))

    @app.delete(ARM_ACCOUNT + "/pools/{name}")
    def delete_pool(sub: str, rg: str, account: str, name: str, request: Request) -> Response:
        with world.lock:
            pool = world.pools.pop(name, None)
            if pool is None:
                return Response(status_code=204)
            world.deleted_pools.append(name)
        location = (f"{request.base_url}subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Batch/"
                    f"batchAccounts/{account}/poolOperationResults/delete-{name}?api-version="
                    f"{request.query_params.get('api-version', '')}")
        return Response(status_code=202, headers={"Location": location, "Retry-After": "0"})

    @app.get(ARM_ACCOUNT + "/poolOperationResults/{operation}")
    def pool_operation(sub: str, rg: str, account: str, operation: str) -> Response:
        return Response(status_code=200)

    # --- management plane: identities and locks -----------------------------------------------------------------
    identity_path = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/" \
                    "userAssignedIdentities/{name}"

    @app.put(identity_path)
    async def put_identity(sub: str, rg: str, name: str, request: Request) -> dict[str, Any]:
        body = await request.json()
        with world.lock:
            if name not in world.identities:
                world.identities[name] = {
                    "id": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/"
                          f"userAssignedIdentities/{name}",
                    "name": name, "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
                    "location": body.get("location", "eastus"), "tags": body.get("tags", {}),
                    "properties": {"tenantId": "00000000-0000-0000-0000-000000000000",
                                   "principalId": str(uuid.uuid4()), "clientId": str(uuid.uuid4())}}
            return world.identities[name]

    @app.delete(identity_path)
    def delete_identity(sub: str, rg: str, name: str) -> Response:
        with world.lock:
            existed = world.identities.pop(name, None) is not None
        return Response(status_code=200 if existed else 204)

    @app.get("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Authorization/locks")
    def list_locks(sub: str, rg: str) -> dict[str, Any]:
        with world.lock:
            return {"value": [{"id": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Authorization/"
                                     f"locks/{name}", "name": name, "type": "Microsoft.Authorization/locks",
                               "properties": {"level": level, "notes": ""}} for name, level in world.locks.items()]}

    # --- data plane: nodes ------------------------------------------------------------------------------------
    def node_json(base: str, pool: Pool, node_id: str) -> dict[str, Any]:
        node = pool.nodes[node_id]
        booted = node.state not in ("creating", "starting")
        body: dict[str, Any] = {"id": node.id, "url": f"{base}pools/{pool.name}/nodes/{node.id}", "state": node.state,
                                "schedulingState": "enabled", "stateTransitionTime": node.state_time}
        if booted:
            body["lastBootTime"] = node.state_time
        body |= {"allocationTime": node.allocation_time, "ipAddress": node.ip, "affinityId": f"TVM:{node.id}",
                 "vmSize": str(pool.body["properties"].get("vmSize", "")).lower(), "totalTasksRun": node.total_tasks,
                 "totalTasksSucceeded": node.total_tasks, "runningTasksCount": int(node.task is not None),
                 "runningTaskSlotsCount": int(node.task is not None)}
        if booted:
            body["certificateReferences"] = []
        body["isDedicated"] = node.dedicated
        if booted:
            body["nodeAgentInfo"] = {"lastUpdateTime": node.state_time, "version": "1.10.0"}
        image = pool.body["properties"].get("deploymentConfiguration", {}).get("virtualMachineConfiguration", {})
        reference = dict(image.get("imageReference", {}))
        body["virtualMachineInfo"] = {"imageReference": {**reference, "version": reference.get("version", "latest"),
                                                         "exactVersion": "24.04.202501010"}}
        return body

    @app.get("/pools/{pool_id}/nodes")
    def list_nodes(pool_id: str, request: Request) -> Response:
        with world.lock:
            pool = world.pools.get(pool_id)
            if pool is None:
                return batch_error(404, "PoolNotFound", "The specified pool does not exist.")
            base = str(request.base_url)
            return JSONResponse({"odata.metadata": f"{base}$metadata#nodes",
                                 "value": [node_json(base, pool, n) for n in pool.nodes]}, media_type=ODATA)

    @app.post("/pools/{pool_id}/removenodes")
    async def remove_nodes(pool_id: str, request: Request) -> Response:
        body = await request.json()
        with world.lock:
            pool = world.pools.get(pool_id)
            if pool is None:
                return batch_error(404, "PoolNotFound", "The specified pool does not exist.")
            if pool.resizing_until is not None:
                return batch_error(409, "PoolBeingResized", "The specified pool is being resized.")
            missing = [n for n in body.get("nodeList", []) if n not in pool.nodes]
            if missing:
                return batch_error(404, "NodeNotFound", f"The specified node does not exist: {missing[0]}")
            world.remove_nodes(pool, list(body["nodeList"]))
        return Response(status_code=202, headers={"DataServiceId": f"{request.base_url}pools/{pool_id}/removenodes"})

    # --- data plane: jobs and tasks ---------------------------------------------------------------------------
    @app.post("/jobs")
    async def create_job(request: Request) -> Response:
        body = await request.json()
        with world.lock:
            if body["id"] in world.jobs:
                return batch_error(409, "JobExists", "The specified job already exists.")
            world.jobs[body["id"]] = body | {"state": "active", "creationTime": iso_now()}
        return _created(f"{request.base_url}jobs/{body['id']}")

    @app.get("/jobs")
    def list_jobs(request: Request) -> Response:
        with world.lock:
            return JSONResponse({"odata.metadata": f"{request.base_url}$metadata#jobs",
                                 "value": [{"id": j["id"], "url": f"{request.base_url}jobs/{j['id']}",
                                            "state": j["state"], "creationTime": j["creationTime"],
                                            "poolInfo": j["poolInfo"]} for j in world.jobs.values()]},
                                media_type=ODATA)

    @app.delete("/jobs/{job_id}")
    def delete_job(job_id: str) -> Response:
        with world.lock:
            if world.jobs.pop(job_id, None) is None:
                return batch_error(404, "JobNotFound", "The specified job does not exist.")
            for key in [k for k in world.tasks if k.startswith(f"{job_id}/")]:
                world.terminate(world.tasks[key])
        return Response(status_code=202)

    @app.post("/jobs/{job_id}/tasks")
    async def create_task(job_id: str, request: Request) -> Response:
        body = await request.json()
        with world.lock:
            if job_id not in world.jobs:
                return batch_error(404, "JobNotFound", "The specified job does not exist.")
            key = f"{job_id}/{body['id']}"
            if key in world.tasks:
                return batch_error(409, "TaskExists", "The specified task already exists.")
            world.tasks[key] = Task(job=job_id, body=body)
        return _created(f"{request.base_url}jobs/{job_id}/tasks/{body['id']}")

    def task_json(base: str, task: Task) -> dict[str, Any]:
        body: dict[str, Any] = {"odata.metadata": f"{base}$metadata#tasks/@Element", "id": task.id,
                                "url": f"{base}jobs/{task.job}/tasks/{task.id}", "eTag": task.etag,
                                "creationTime": task.created, "lastModified": task.created, "state": task.state,
                                "stateTransitionTime": task.state_time}
        if task.previous_state is not None and task.state != "active":
            body |= {"previousState": task.previous_state, "previousStateTransitionTime": task.state_time}
        for optional in ("displayName",):
            if optional in task.body:
                body[optional] = task.body[optional]
        body |= {"commandLine": task.body["commandLine"],
                 "userIdentity": {"autoUser": {"scope": "pool", "elevationLevel": "nonadmin"}},
                 "constraints": {"maxWallClockTime": "P10675199DT2H48M5.4775807S", "retentionTime": "P7D",
                                 "maxTaskRetryCount": int((task.body.get("constraints") or {})
                                                          .get("maxTaskRetryCount", 0))},
                 "requiredSlots": 1}
        for optional in ("environmentSettings", "multiInstanceSettings", "affinityInfo"):
            if optional in task.body:
                body[optional] = task.body[optional]
        execution: dict[str, Any] = {}
        if task.start_time:
            execution["startTime"] = task.start_time
        if task.state == "completed":
            execution["endTime"] = task.end_time
            if task.exit_code is not None:
                execution["exitCode"] = task.exit_code
            if task.failure is not None:
                execution["failureInfo"] = task.failure
            execution["result"] = "success" if task.exit_code == 0 else "failure"
        execution |= {"retryCount": 0, "requeueCount": task.requeues}
        body["executionInfo"] = execution
        if task.nodes:
            pool_id = world.jobs[task.job]["poolInfo"]["poolId"]
            node = task.nodes[0]
            body["nodeInfo"] = {"affinityId": f"TVM:{node}", "nodeUrl": f"{base}pools/{pool_id}/nodes/{node}",
                                "poolId": pool_id, "nodeId": node,
                                "taskRootDirectory": f"workitems/{task.job}/job-1/{task.id}",
                                "taskRootDirectoryUrl": f"{base}pools/{pool_id}/nodes/{node}/files/workitems/"
                                                        f"{task.job}/job-1/{task.id}"}
        return body

    @app.get("/jobs/{job_id}/tasks")
    def list_tasks(job_id: str, request: Request) -> Response:
        wanted = request.query_params.get("$filter", "")
        with world.lock:
            if job_id not in world.jobs:
                return batch_error(404, "JobNotFound", "The specified job does not exist.")
            tasks = [t for k, t in world.tasks.items() if k.startswith(f"{job_id}/")]
            if wanted == "state ne 'completed'":
                tasks = [t for t in tasks if t.state != "completed"]
            base = str(request.base_url)
            return JSONResponse({"odata.metadata": f"{base}$metadata#tasks",
                                 "value": [_without_metadata(task_json(base, t)) for t in tasks]}, media_type=ODATA)

    @app.get("/jobs/{job_id}/tasks/{task_id}")
    def get_task(job_id: str, task_id: str, request: Request) -> Response:
        with world.lock:
            task = world.tasks.get(f"{job_id}/{task_id}")
            if task is None:
                return batch_error(404, "TaskNotFound", "The specified task does not exist.")
            return JSONResponse(task_json(str(request.base_url), task), media_type=ODATA,
                                headers={"ETag": task.etag})

    @app.post("/jobs/{job_id}/tasks/{task_id}/terminate")
    def terminate_task(job_id: str, task_id: str) -> Response:
        with world.lock:
            task = world.tasks.get(f"{job_id}/{task_id}")
            if task is None:
                return batch_error(404, "TaskNotFound", "The specified task does not exist.")
            if task.state == "completed":
                return batch_error(409, "TaskCompleted", "The specified task is already completed.")
            world.terminate(task)
        return Response(status_code=204)

    @app.get("/jobs/{job_id}/tasks/{task_id}/files/{name}")
    def task_file(job_id: str, task_id: str, name: str) -> Response:
        with world.lock:
            task = world.tasks.get(f"{job_id}/{task_id}")
            path = task.directory / name if task is not None and task.directory is not None else None
        if path is None or name not in ("stdout.txt", "stderr.txt") or not path.exists():
            return batch_error(404, "FileNotFound", "The specified file does not exist.")
        return Response(path.read_bytes(), media_type="application/octet-stream",
                        headers={"ocp-batch-file-isdirectory": "False"})

    return app


def _created(location: str) -> Response:
    return Response(status_code=201, headers={"ETag": new_etag(), "Location": location, "DataServiceId": location})


def _without_metadata(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "odata.metadata"}


def _with_image_version(deployment: dict[str, Any]) -> dict[str, Any]:
    copy = json.loads(json.dumps(deployment))
    reference = copy.get("virtualMachineConfiguration", {}).get("imageReference")
    if reference is not None:
        reference.setdefault("version", "latest")
    return copy
