using System.Text.Json.Serialization;
using Cortensor.Portal.Keys;

namespace Cortensor.Portal.Redis.Keys;

/// <summary>Source-generated JSON for principals cached in Redis (no reflection: trim- and AOT-safe).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, UseStringEnumConverter = true)]
[JsonSerializable(typeof(ApiKeyPrincipal))]
internal sealed partial class RedisKeysJsonContext : JsonSerializerContext;
