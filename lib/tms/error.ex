defmodule Tms.Error do
  @moduledoc """
  The error every `Tms` function returns as `{:error, %Tms.Error{}}` (and
  bang variants raise).

  `kind` is an atom to match on:

    * `:invalid_argument` - the call's arguments were rejected; nothing was written
    * `:series_not_found` - a raw batch named an id the store never assigned
      (`details.id`, `details.entry`)
    * `:overloaded` - more points are buffered than `:max_buffered_points`
      allows; retry after a flush
    * `:cardinality_limit` - the write would create a series past the store's
      `:max_series` (`details.limit`); existing series keep working
    * `:io` - a file system call failed (`details.op`, `details.path`, and
      `details.errno` such as `:enospc` or `:erofs`)
    * `:corrupt_data` - a file failed its checksum (`details.path`, `details.reason`)
    * `:unsupported_version` - a file was written by a newer format
    * `:locked` - another store (in this VM or another OS process) has the directory
    * `:poisoned` - an fsync of the WAL failed; restart the store
    * `:internal` - a failure inside the engine no argument caused (a worker
      thread that panicked, the compressor refusing its input): a bug to report
    * `:bad_data` - a PromQL query does not parse or type-check (Prometheus'
      `bad_data`)
    * `:execution` - a PromQL query failed while running (many-to-many
      matching, too many samples; Prometheus' `execution`)
    * `:timeout` - a PromQL query ran past its timeout
    * `:closed` - the store was stopped
    * `:no_store` - no store runs under that name

  `details` is a map with at least `:message`.
  """

  defexception [:kind, :message, details: %{}]

  @type kind ::
          :invalid_argument
          | :series_not_found
          | :overloaded
          | :cardinality_limit
          | :io
          | :corrupt_data
          | :unsupported_version
          | :locked
          | :poisoned
          | :internal
          | :bad_data
          | :execution
          | :timeout
          | :closed
          | :no_store

  @type t :: %__MODULE__{kind: kind(), message: String.t(), details: map()}

  @doc false
  @spec new(kind(), String.t(), map()) :: t()
  def new(kind, message, details \\ %{}) do
    %__MODULE__{kind: kind, message: message, details: Map.put(details, :message, message)}
  end

  @doc false
  # Turns a NIF's result, `{:ok, value}` or `{:error, {kind, details}}`,
  # into `{:ok, value}` or `{:error, %Tms.Error{}}`.
  @spec from_engine({:ok, term()} | {:error, {kind(), map()}}) :: {:ok, term()} | {:error, t()}
  def from_engine({:ok, _value} = ok), do: ok

  def from_engine({:error, {kind, %{message: message} = details}}) when is_atom(kind) do
    {:error, %__MODULE__{kind: kind, message: message, details: details}}
  end
end
