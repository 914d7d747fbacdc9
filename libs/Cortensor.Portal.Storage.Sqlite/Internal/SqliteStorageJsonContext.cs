using System.Text.Json;
using System.Text.Json.Serialization;

namespace Cortensor.Portal.Storage.Sqlite.Internal;

/// <summary>Source-generated JSON for the JSON text columns (no reflection; AOT-safe).</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(string[]))]
internal sealed partial class SqliteStorageJsonContext : JsonSerializerContext;
