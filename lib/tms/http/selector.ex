defmodule Tms.HTTP.Selector do
  @moduledoc false
  # Prometheus series selectors, as `match[]` carries them:
  # `metric`, `metric{l="v", ...}` or `{__name__=~"node_.*", ...}`, with the
  # operators =, !=, =~ and !~ and values in double, single or back quotes
  # (escapes \\ \" \' \n \t in the first two). Parsed into the metric
  # matcher and the label matchers `Tms.query_range/6` takes.

  @ops [{"=~", :regex}, {"!~", :not_regex}, {"!=", :neq}, {"=", :eq}]

  @doc """
  `{:ok, {metric_matcher, matchers}}` where `metric_matcher` is `nil` (any
  metric) or `{op, value}`, or `{:error, message}`.
  """
  def parse(text) do
    text = String.trim(text)

    with {:ok, name, rest} <- metric_name(text),
         {:ok, matchers} <- braces(String.trim_leading(rest)) do
      {named, labels} = Enum.split_with(matchers, fn {k, _, _} -> k == "__name__" end)

      case {name, named} do
        {nil, []} when labels == [] -> {:error, "a selector must name a metric or a label matcher"}
        {nil, []} -> {:ok, {nil, labels}}
        {nil, [{_, op, v}]} -> {:ok, {{op, v}, labels}}
        {name, []} -> {:ok, {{:eq, name}, labels}}
        _ -> {:error, "the metric is named twice"}
      end
    end
  end

  defp metric_name(text) do
    case Regex.run(~r/^[a-zA-Z_:][a-zA-Z0-9_:]*/, text) do
      [name] -> {:ok, name, binary_part(text, byte_size(name), byte_size(text) - byte_size(name))}
      nil -> {:ok, nil, text}
    end
  end

  defp braces(""), do: {:ok, []}
  defp braces("{" <> rest), do: matchers(String.trim_leading(rest), [])
  defp braces(other), do: {:error, "unexpected #{inspect(String.slice(other, 0, 20))} in a selector"}

  defp matchers("}" <> rest, acc) do
    if String.trim(rest) == "", do: {:ok, Enum.reverse(acc)}, else: {:error, "text after a selector's }"}
  end

  defp matchers(text, acc) do
    with [name] <- Regex.run(~r/^[a-zA-Z_][a-zA-Z0-9_]*/, text) || {:error, "a label name expected"},
         rest = String.trim_leading(binary_part(text, byte_size(name), byte_size(text) - byte_size(name))),
         {:ok, op, rest} <- op(rest),
         {:ok, value, rest} <- quoted(String.trim_leading(rest)) do
      acc = [{name, op, value} | acc]

      case String.trim_leading(rest) do
        "," <> rest -> matchers(String.trim_leading(rest), acc)
        "}" <> _ = rest -> matchers(rest, acc)
        _ -> {:error, "a , or } expected after a label matcher"}
      end
    end
  end

  defp op(text) do
    Enum.find_value(@ops, {:error, "a matcher operator (=, !=, =~, !~) expected"}, fn {sym, op} ->
      if String.starts_with?(text, sym),
        do: {:ok, op, binary_part(text, byte_size(sym), byte_size(text) - byte_size(sym))}
    end)
  end

  defp quoted(<<q, rest::binary>>) when q in [?", ?'], do: unescape(rest, q, [])

  defp quoted("`" <> rest) do
    case :binary.split(rest, "`") do
      [value, rest] -> {:ok, value, rest}
      [_] -> {:error, "an unterminated string"}
    end
  end

  defp quoted(_), do: {:error, "a quoted label value expected"}

  defp unescape(<<q, rest::binary>>, q, acc), do: {:ok, IO.iodata_to_binary(Enum.reverse(acc)), rest}
  defp unescape(<<?\\, ?n, rest::binary>>, q, acc), do: unescape(rest, q, ["\n" | acc])
  defp unescape(<<?\\, ?t, rest::binary>>, q, acc), do: unescape(rest, q, ["\t" | acc])
  defp unescape(<<?\\, c, rest::binary>>, q, acc), do: unescape(rest, q, [<<c>> | acc])
  defp unescape(<<c, rest::binary>>, q, acc), do: unescape(rest, q, [<<c>> | acc])
  defp unescape(<<>>, _q, _acc), do: {:error, "an unterminated string"}
end
