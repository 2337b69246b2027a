"""The JSON shapes of the Open VSX registry API and of VS Code's gallery API, as the clients read them.

Field names and nesting follow eclipse/openvsx's server (``json/*Json.java`` and
``adapter/ExtensionQueryResult.java``). Absent values are omitted, never ``null``: every
route answers with ``exclude_none`` (``ovsx`` crashes on ``"averageRating": null``).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class _Json(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True)


class ResultJson(_Json):
    success: str | None = None
    warning: str | None = None
    error: str | None = None


class RegistryVersionJson(ResultJson):
    version: str
    max_extension_size: int | None = None


class SizeLimitJson(ResultJson):
    max_size: int


class NamespaceCreate(_Json):
    name: str = Field(min_length=1, max_length=64)


class UserJson(_Json):
    login_name: str
    full_name: str | None = None
    homepage: str | None = None


class ExtensionReferenceJson(_Json):
    url: str
    namespace: str
    extension: str


class VersionTargetPlatformsJson(_Json):
    version: str
    target_platforms: list[str]


class ExtensionJson(ResultJson):
    namespace_url: str
    reviews_url: str
    files: dict[str, str]
    name: str
    namespace: str
    target_platform: str
    version: str
    pre_release: bool
    published_by: UserJson
    verified: bool
    unrelated_publisher: bool = False
    namespace_access: str = "restricted"
    all_versions: dict[str, str] | None = None
    all_versions_url: str | None = None
    average_rating: float | None = None
    download_count: int
    review_count: int
    version_alias: list[str]
    timestamp: str
    preview: bool | None = None
    display_name: str | None = None
    namespace_display_name: str
    description: str | None = None
    engines: dict[str, str] | None = None
    categories: list[str] | None = None
    extension_kind: list[str] | None = None
    tags: list[str] | None = None
    license: str | None = None
    homepage: str | None = None
    repository: str | None = None
    sponsor_link: str | None = None
    bugs: str | None = None
    qna: str | None = None
    gallery_color: str | None = None
    gallery_theme: str | None = None
    localized_languages: list[str] | None = None
    dependencies: list[ExtensionReferenceJson] | None = None
    bundled_extensions: list[ExtensionReferenceJson] | None = None
    downloads: dict[str, str] | None = None
    all_target_platform_versions: list[VersionTargetPlatformsJson] | None = None
    url: str | None = None
    deprecated: bool = False
    downloadable: bool = True
    # Mercato's own: a paid extension the caller does not own says where to buy it.
    price: dict[str, object] | None = None
    purchase_url: str | None = None


class NamespaceJson(ResultJson):
    name: str
    extensions: dict[str, str]
    verified: bool
    access: str = "restricted"


class VersionReferenceJson(_Json):
    url: str
    files: dict[str, str]
    version: str
    target_platform: str
    engines: dict[str, str] | None = None


class VersionReferencesJson(ResultJson):
    offset: int
    total_size: int
    versions: list[VersionReferenceJson]


class SearchEntryJson(_Json):
    url: str
    files: dict[str, str]
    name: str
    namespace: str
    version: str
    timestamp: str
    verified: bool
    all_versions: list[VersionReferenceJson] | None = None
    all_versions_url: str | None = None
    average_rating: float | None = None
    review_count: int
    download_count: int
    display_name: str | None = None
    description: str | None = None
    deprecated: bool = False
    # Mercato's own (see ExtensionJson).
    price: dict[str, object] | None = None
    purchase_url: str | None = None


class SearchResultJson(ResultJson):
    offset: int
    total_size: int
    extensions: list[SearchEntryJson]


class QueryResultJson(ResultJson):
    offset: int
    total_size: int
    extensions: list[ExtensionJson]


# --- the VS Code gallery ---------------------------------------------------------------------------

class GalleryCriterion(BaseModel):
    filterType: int
    value: str | None = None


class GalleryFilter(BaseModel):
    criteria: list[GalleryCriterion] = Field(default_factory=list, max_length=200)
    pageNumber: int = 1
    pageSize: int = 0
    sortBy: int = 0
    sortOrder: int = 0


class GalleryQuery(BaseModel):
    filters: list[GalleryFilter] = Field(default_factory=list, max_length=20)
    flags: int = 0
    assetTypes: list[str] = Field(default_factory=list)


class GalleryPublisher(_Json):
    display_name: str
    publisher_id: str
    publisher_name: str


class GalleryFile(_Json):
    asset_type: str
    source: str


class GalleryProperty(_Json):
    key: str
    value: str


class GalleryVersion(_Json):
    version: str
    last_updated: str
    asset_uri: str | None = None
    fallback_asset_uri: str | None = None
    files: list[GalleryFile] | None = None
    properties: list[GalleryProperty] | None = None
    target_platform: str | None = None


class GalleryStatistic(_Json):
    statistic_name: str
    value: float


class GalleryExtension(_Json):
    extension_id: str
    extension_name: str
    display_name: str
    short_description: str | None = None
    publisher: GalleryPublisher
    versions: list[GalleryVersion]
    statistics: list[GalleryStatistic]
    tags: list[str]
    release_date: str
    published_date: str
    last_updated: str
    categories: list[str]
    flags: str


class GalleryMetadataItem(_Json):
    name: str
    count: int


class GalleryMetadata(_Json):
    metadata_type: str
    metadata_items: list[GalleryMetadataItem]


class GalleryResultItem(_Json):
    extensions: list[GalleryExtension]
    result_metadata: list[GalleryMetadata]


class GalleryQueryResult(_Json):
    results: list[GalleryResultItem]


# --- personal registry tokens (the account API) ------------------------------------------------

class RegistryTokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="What the token is for, e.g. 'laptop VSCodium'.")


class RegistryTokenRead(BaseModel):
    id: str
    name: str
    hint: str = Field(description="The token's first characters.")
    created_at: datetime
    last_used_at: datetime | None = None


class RegistryTokenCreated(RegistryTokenRead):
    token: str = Field(description="Shown once: keep it secret (it is part of the registry URL).")
    registry_url: str = Field(description="The personal Open VSX registry URL (ovsx, Theia).")
    gallery_service_url: str = Field(description="extensionsGallery.serviceUrl for VSCodium / code-server.")
    gallery_item_url: str = Field(description="extensionsGallery.itemUrl for VSCodium / code-server.")
