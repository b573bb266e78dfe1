//! Domain enums stored as text (`orders.status`, `users.role`): encoded and
//! decoded through their names, the same on both backends.

/// Implements sqlx's `Type`, `Encode` and `Decode` for the `Any` driver on
/// an enum stored as its name. The enum needs `fn as_str(self) -> &'static str`
/// and `fn from_name(&str) -> Option<Self>`.
#[macro_export]
macro_rules! text_column {
    ($ty:ty) => {
        impl ::sqlx::Type<::sqlx::Any> for $ty {
            fn type_info() -> ::sqlx::any::AnyTypeInfo {
                <&str as ::sqlx::Type<::sqlx::Any>>::type_info()
            }

            fn compatible(ty: &::sqlx::any::AnyTypeInfo) -> bool {
                <&str as ::sqlx::Type<::sqlx::Any>>::compatible(ty)
            }
        }

        impl<'q> ::sqlx::Encode<'q, ::sqlx::Any> for $ty {
            fn encode_by_ref(
                &self,
                buf: &mut <::sqlx::Any as ::sqlx::Database>::ArgumentBuffer,
            ) -> Result<::sqlx::encode::IsNull, ::sqlx::error::BoxDynError> {
                <&str as ::sqlx::Encode<'q, ::sqlx::Any>>::encode_by_ref(&self.as_str(), buf)
            }
        }

        impl<'r> ::sqlx::Decode<'r, ::sqlx::Any> for $ty {
            fn decode(value: ::sqlx::any::AnyValueRef<'r>) -> Result<Self, ::sqlx::error::BoxDynError> {
                let name = <&str as ::sqlx::Decode<'r, ::sqlx::Any>>::decode(value)?;
                <$ty>::from_name(name)
                    .ok_or_else(|| format!("{name:?} is not a valid {}", ::std::any::type_name::<$ty>()).into())
            }
        }
    };
}
