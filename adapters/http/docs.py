"""The OpenAPI docs page, with Swagger UI served by this app from the Python environment.

litestar's render plugins load their scripts, styles and favicon from public CDNs: on a machine
without internet (a laptop on a train, a locked-down server) the docs page stays blank. Swagger
UI's built files come from the swagger-ui-bundle-v2 package instead and are served under
``/schema/static/swagger-ui-<version>/``, so the page references only this app's own URLs.
The version in the path lets browsers keep the files: another version is another URL.

Only Swagger UI is offered (at ``/schema`` and ``/schema/swagger``), beside the spec itself
(``/schema/openapi.json``, ``.yaml``): litestar's other viewers (ReDoc, Elements, RapiDoc)
exist only on CDNs.
"""

from __future__ import annotations

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import (
    JsonRenderPlugin,
    OpenAPIRenderPlugin,
    SwaggerRenderPlugin,
    YamlRenderPlugin,
)
from litestar.static_files import create_static_files_router
from swagger_ui_bundle import swagger_ui_path

from adapters.http.permissions import public

SCHEMA_PATH = "/schema"
SWAGGER_ASSETS = f"{SCHEMA_PATH}/static/{swagger_ui_path.name}"


def render_plugins() -> list[OpenAPIRenderPlugin]:
    return [
        SwaggerRenderPlugin(
            path=["/", "/swagger"],
            js_url=f"{SWAGGER_ASSETS}/swagger-ui-bundle.js",
            css_url=f"{SWAGGER_ASSETS}/swagger-ui.css",
            standalone_preset_js_url=f"{SWAGGER_ASSETS}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{SWAGGER_ASSETS}/favicon-32x32.png'>",
        ),
        JsonRenderPlugin(),
        YamlRenderPlugin(),
    ]


def swagger_assets() -> Router:
    return create_static_files_router(
        path=SWAGGER_ASSETS,
        directories=[swagger_ui_path],  # type: ignore[list-item]  # a Traversable, a Path here
        name="swagger-ui",
        include_in_schema=False,
        cache_control=CacheControlHeader(public=True, max_age=86_400),
        **public(),
    )
