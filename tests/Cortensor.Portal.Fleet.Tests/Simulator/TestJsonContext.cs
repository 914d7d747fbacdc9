using System.Text.Json.Serialization;

namespace Cortensor.Portal.Fleet.Tests.Simulator;

[JsonSerializable(typeof(string))]
internal sealed partial class TestJsonContext : JsonSerializerContext;
