//! The OpenAPI document served at `/openapi.json` (hand-written; keep in step with api.rs).

/// OpenAPI 3.1 description of the HTTP API.
pub const DOCUMENT: &str = r##"{
  "openapi": "3.1.0",
  "info": {"title": "arbiter", "version": "0.1.0",
           "description": "Choose the best of N candidate LLM responses with a reward model and sandboxed wasm policies."},
  "components": {
    "schemas": {
      "Message": {"type": "object", "required": ["role", "content"],
                  "properties": {"role": {"type": "string"}, "content": {"type": "string"}}},
      "Error": {"type": "object", "required": ["error", "type"],
                "properties": {"error": {"type": "string"}, "type": {"type": "string"}}}
    },
    "responses": {
      "Error": {"description": "Error: 400 bad input or parameters (names the field or parameter; also incomplete_body), 401 bad API key (WWW-Authenticate: Bearer), 404 unknown route, policy or rule, 405 method not allowed, 408 body not received within --body-timeout-seconds, 413 body, tokens (too_many_tokens: --max-input-tokens, --max-request-tokens) or candidates too large, 429 overloaded (admission or queue full), 500 engine failure, 502 a plugin broke a limit or its output contract (type plugin_<kind>), 503 instance pool full, engine unhealthy, too_many_connections, or shutting_down (the drain deadline passed)",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    }
  },
  "paths": {
    "/v1/score": {"post": {"summary": "Score responses to a conversation (templated here), or texts already templated by the caller (`texts`: scored as given, no special tokens added)",
      "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object",
        "properties": {"messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}}, "responses": {"type": "array", "items": {"type": "string"}},
                       "texts": {"type": "array", "items": {"type": "string"}}}}}}},
      "responses": {"200": {"description": "{scores, model, usage: {prompt_tokens, total_tokens}}"}, "default": {"$ref": "#/components/responses/Error"}}}},
    "/v1/select": {"post": {"summary": "Run a policy (and rules) over candidates",
      "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["policy"],
        "properties": {"policy": {"type": "string"}, "rules": {"type": "array", "items": {"type": "string"}},
          "messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}},
          "candidates": {"type": "array", "items": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}, "score": {}}}},
          "responses": {"type": "array", "items": {"type": "string"}}, "params": {"type": "object"}, "seed": {"type": "integer"}}}}}},
      "responses": {"200": {"description": "{chosen, ranking, scores, features, reason, policy: {name, version, sha256}, model, usage, timings, log}"}, "default": {"$ref": "#/components/responses/Error"}}}},
    "/v1/policies": {"get": {"summary": "Loaded plugins: name, state (ready | compiling | failed), version, sha256, kind, source, loaded_at, last_error, compiling ({file, since, seconds} while a load of it runs; the previous version serves meanwhile), limits (in force; NAME.limits beside NAME.wasm overrides the daemon's)",
      "responses": {"200": {"description": "{policies: [...]}"}}}},
    "/v1/chat/completions": {"post": {"summary": "NVIDIA NIM reward-model compatible scoring: messages end in the assistant turn; content is reward:<score>",
      "responses": {"200": {"description": "chat.completion"}, "default": {"$ref": "#/components/responses/Error"}}}},
    "/v1/models": {"get": {"summary": "OpenAI-style model list: the served model's id", "responses": {"200": {"description": "{object: list, data: [{id, object: model, owned_by, max_model_len}]}"}}}},
    "/get_reward": {"post": {"summary": "OpenRLHF remote reward model: {query: [templated texts], prompts?, labels?} -> {rewards, scores}",
      "responses": {"200": {"description": "{rewards: [float], scores: [float]}"}, "default": {"$ref": "#/components/responses/Error"}}}},
    "/classify": {"post": {"summary": "vLLM pooling classify: {model?, input: string | [string] (templated texts) | messages: [...] ending in the assistant turn, use_activation?: bool}; probs = [raw reward] with use_activation=false, else [sigmoid(reward)]; token-id input and truncate_prompt_tokens are not supported",
      "responses": {"200": {"description": "{id, object: list, created, model, data: [{index, label, probs, num_classes}], usage}"}, "default": {"$ref": "#/components/responses/Error"}}}},
    "/v1/classify": {"post": {"summary": "Same as /classify", "responses": {"200": {"description": "as /classify"}, "default": {"$ref": "#/components/responses/Error"}}}},
    "/health": {"get": {"summary": "Liveness; after an engine failure, runs a real tiny forward", "responses": {"200": {"description": "ok"}, "503": {"description": "unhealthy"}}}},
    "/info": {"get": {"summary": "Model and limits", "responses": {"200": {"description": "info"}}}},
    "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition"}}}},
    "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}}
  }
}"##;
