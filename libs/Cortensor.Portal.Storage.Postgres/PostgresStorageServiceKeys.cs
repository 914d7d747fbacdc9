namespace Cortensor.Portal.Storage.Postgres;

/// <summary>Keys of the keyed services the Postgres store registers.</summary>
public static class PostgresStorageServiceKeys
{
    /// <summary>
    /// Key of the store's <see cref="Npgsql.NpgsqlDataSource"/> singleton
    /// (<c>sp.GetRequiredKeyedService&lt;NpgsqlDataSource&gt;(PostgresStorageServiceKeys.DataSource)</c>). Keyed so
    /// it never collides with an application's own data source.
    /// </summary>
    public const string DataSource = "Cortensor.Portal.Storage.Postgres";
}
