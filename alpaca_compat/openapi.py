"""The API-key headers in the OpenAPI document, so Swagger UI's "Authorize" offers them."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "alpaca_compat.authentication.ApiKeyAuthentication"
    name = ["apiKeyId", "apiSecretKey"]

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "apiKey",
                "in": "header",
                "name": "APCA-API-KEY-ID",
                "description": "For programs (Alpaca's SDKs, bots) with an API key from `POST api-keys/`: "
                "its key_id, together with apiSecretKey. An API key trades and reads; it cannot manage "
                "keys, sessions or credentials.",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": "APCA-API-SECRET-KEY",
                "description": "The API key's secret_key, shown once when the key was made; together with apiKeyId.",
            },
        ]
