using System.Text.Json;
using System.Text.Json.Serialization;
using Cortensor.Portal.Metering.Usage;

namespace Cortensor.Portal.Metering.Writer;

/// <summary>Source-generated JSON for the spill files (one compact <see cref="UsageRecord"/> per line).</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = false)]
[JsonSerializable(typeof(UsageRecord))]
internal sealed partial class MeteringJsonContext : JsonSerializerContext;
