using System.Text.Json;
using System.Text.Json.Nodes;

namespace Cortensor.Portal.Testing.Unkey;

/// <summary>
/// The part of JSON Schema the Unkey v2 request bodies use (type, required, min/max length and value, pattern,
/// maxItems, maxProperties, nullable, <c>additionalProperties: false</c>), enough for the stub to answer a body the
/// real validator rejects with the same 400 (<c>svc/api/openapi/spec/paths/v2/**/…RequestBody.yaml</c> in
/// unkeyed/unkey; the server validates every request against the generated spec before any handler runs).
/// </summary>
public static class UnkeySchema
{
    public const string Identifier = "^[a-zA-Z0-9_]+$";
    public const string ExternalIdPattern = "^[a-zA-Z0-9_.-]+$";
    public const string PermissionSlug = "^[a-zA-Z0-9_:\\-.*]+$";

    /// <summary>The first violation of <paramref name="schema"/> in <paramref name="value"/>, as (location, message), or null.</summary>
    public static (string Location, string Message)? Check(JsonNode? value, Shape schema, string location)
    {
        if (value is null)
        {
            return schema.Nullable ? null : (location, "must not be null");
        }

        switch (schema.Kind)
        {
            case Kind.String:
                if (value.GetValueKind() != JsonValueKind.String)
                {
                    return (location, "must be a string");
                }

                var text = value.GetValue<string>();
                if (text.Length < schema.Min || text.Length > schema.Max)
                {
                    return (location, $"length must be between {schema.Min} and {schema.Max}");
                }

                return schema.Pattern is { } pattern && !System.Text.RegularExpressions.Regex.IsMatch(text, pattern)
                    ? (location, "does not match pattern " + pattern)
                    : null;
            case Kind.Integer:
                if (value.GetValueKind() != JsonValueKind.Number || !value.AsValue().TryGetValue<long>(out var number))
                {
                    return (location, "must be an integer");
                }

                return number < schema.Min || number > schema.Max ? (location, $"must be between {schema.Min} and {schema.Max}") : null;
            case Kind.Boolean:
                return value.GetValueKind() is JsonValueKind.True or JsonValueKind.False ? null : (location, "must be a boolean");
            case Kind.Array:
                if (value is not JsonArray array)
                {
                    return (location, "must be an array");
                }

                if (array.Count > schema.Max)
                {
                    return (location, $"must have at most {schema.Max} items");
                }

                for (var i = 0; i < array.Count; i++)
                {
                    if (Check(array[i], schema.Items!, $"{location}[{i}]") is { } itemError)
                    {
                        return itemError;
                    }
                }

                return null;
            case Kind.FreeObject:
                if (value is not JsonObject free)
                {
                    return (location, "must be an object");
                }

                return free.Count > schema.Max ? (location, $"must have at most {schema.Max} properties") : null;
            case Kind.Object:
                if (value is not JsonObject obj)
                {
                    return (location, "must be an object");
                }

                foreach (var (name, _) in obj)
                {
                    if (!schema.Properties!.ContainsKey(name) && !schema.AllowAdditional)
                    {
                        return ($"{location}.{name}", "additional properties are not allowed");
                    }
                }

                foreach (var (name, property) in schema.Properties!)
                {
                    if (!obj.TryGetPropertyValue(name, out var child))
                    {
                        if (property.Required)
                        {
                            return ($"{location}.{name}", "is required");
                        }

                        continue;
                    }

                    if (Check(child, property, $"{location}.{name}") is { } error)
                    {
                        return error;
                    }
                }

                return null;
            default:
                return null;
        }
    }

    public static Shape Str(long min, long max, string? pattern = null, bool required = false, bool nullable = false)
        => new(Kind.String, required, nullable, min, max, pattern);

    public static Shape Int(long min = long.MinValue, long max = long.MaxValue, bool required = false, bool nullable = false)
        => new(Kind.Integer, required, nullable, min, max);

    public static Shape Bool(bool required = false) => new(Kind.Boolean, required, false);

    public static Shape Array(Shape items, long maxItems = long.MaxValue) => new(Kind.Array, false, false, Max: maxItems) { Items = items };

    public static Shape Map(long maxProperties, bool nullable = false) => new(Kind.FreeObject, false, nullable, Max: maxProperties);

    public static Shape Obj(bool required, bool additional, params (string Name, Shape Shape)[] properties)
        => new(Kind.Object, required, false) { Properties = properties.ToDictionary(p => p.Name, p => p.Shape), AllowAdditional = additional };

    public static Shape Obj(params (string Name, Shape Shape)[] properties) => Obj(false, false, properties);

    public enum Kind
    {
        String,
        Integer,
        Boolean,
        Array,
        FreeObject,
        Object,
    }

    public sealed record Shape(Kind Kind, bool Required, bool Nullable, long Min = long.MinValue, long Max = long.MaxValue, string? Pattern = null)
    {
        public Shape? Items { get; init; }

        public Dictionary<string, Shape>? Properties { get; init; }

        public bool AllowAdditional { get; init; }

        public Shape Req() => this with { Required = true };

        public Shape OrNull() => this with { Nullable = true };
    }
}
