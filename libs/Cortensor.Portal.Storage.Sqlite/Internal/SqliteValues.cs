using Cortensor.Portal.Storage.Sqlite.Database;
using Microsoft.Data.Sqlite;

namespace Cortensor.Portal.Storage.Sqlite.Internal;

/// <summary>Small conversions shared by the stores: nullable parameters and columns, constraint errors.</summary>
internal static class SqliteValues
{
    public static object OrDbNull(string? value) => value is null ? DBNull.Value : value;

    public static object OrDbNull(int? value) => value is { } v ? v : DBNull.Value;

    public static object OrDbNull(long? value) => value is { } v ? v : DBNull.Value;

    public static object OrDbNull(double? value) => value is { } v ? v : DBNull.Value;

    public static string? GetNullableString(this SqliteDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);

    public static int? GetNullableInt32(this SqliteDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : reader.GetInt32(ordinal);

    public static long? GetNullableInt64(this SqliteDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : reader.GetInt64(ordinal);

    public static double? GetNullableDouble(this SqliteDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : reader.GetDouble(ordinal);

    public static DateTimeOffset GetTimestamp(this SqliteDataReader reader, int ordinal) =>
        UnixMicroseconds.ToDateTimeOffset(reader.GetInt64(ordinal));

    public static DateTimeOffset? GetNullableTimestamp(this SqliteDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : UnixMicroseconds.ToDateTimeOffset(reader.GetInt64(ordinal));

    /// <summary>A UNIQUE, PRIMARY KEY, FOREIGN KEY, CHECK or NOT NULL constraint failed.</summary>
    public static bool IsConstraintViolation(SqliteException exception) => exception.SqliteErrorCode == SqliteErrorCodes.Constraint;
}
